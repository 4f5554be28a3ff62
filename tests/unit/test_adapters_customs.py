"""customs-csv: the SCC seizure register."""

from __future__ import annotations

from importlib import resources

import pytest

from schemas.seizures import SeizureReported
from services.ingest.adapters.base import FileUnreadable
from tests.unit.adapter_helpers import convert, errors, event

HEADER = "reg_no;date;time;post;substance;quantity;unit;route;detained;releasable_to\n"


def test_the_sample_register_maps_every_row() -> None:
    sample = resources.files("services.ingest.adapters") / "samples" / "scc-seizures.csv"
    outcomes = convert("customs-csv", sample.read_bytes())
    assert len(outcomes) == 8
    assert all(not isinstance(o, dict) for o in outcomes.values()), outcomes


def test_a_row_becomes_a_canonical_seizure() -> None:
    row = "26-0412/0153;14.03.2024;11:40;Ойбек;героин;20032;г;TJ-UZ-KZ;1;UZ,TJ\n"
    ev = event(convert("customs-csv", HEADER + row)[2])
    assert (ev.id, ev.source, ev.type) == (
        "SCC-26-0412/0153",
        "/units/BLO-OYBEK",
        "seizure.reported",
    )
    assert ev.releasableto == "UZ,TJ"
    assert ev.time.isoformat() == "2024-03-14T11:40:00+05:00"
    data = ev.data
    assert isinstance(data, SeizureReported)
    drug = data.drugs[0]
    assert (drug.substance, drug.quantity, drug.measure) == ("heroin", 20.032, "kg")
    assert (drug.reported_quantity, drug.reported_measure) == (20032, "g")
    assert data.route == ("TJ", "UZ", "KZ")
    assert data.detained == 1
    assert data.agencies == ("SCC",)
    assert data.location is not None
    assert data.location.unit == "BLO-OYBEK"


@pytest.mark.parametrize(
    ("post", "unit"),
    [("Oybek", "BLO-OYBEK"), ("Ойбек", "BLO-OYBEK"), ("Oybek BCP", "BLO-OYBEK"),
     ("KPP Ойбек", "BLO-OYBEK"), ("BLO-OYBEK", "BLO-OYBEK"), ("Do'stlik", "BLO-DUSTLIK"),
     ("Дўстлик", "BLO-DUSTLIK"), ("Сариосиё", "BLO-SARIOSIYO"), ("Ayritom", "BLO-AYRITOM")],
)  # fmt: skip
def test_post_spellings(post: str, unit: str) -> None:
    ev = event(convert("customs-csv", HEADER + f"1;14.03.2024;;{post};heroin;1;kg;;;\n")[2])
    assert ev.unit == unit


@pytest.mark.parametrize(
    ("written", "substance"),
    [("geroin", "heroin"), ("героин", "heroin"), ("Heroin", "heroin"), ("gashish", "hashish"),
     ("ГАШИШ", "hashish"), ("afyun", "opium"), ("опий", "opium"), ("марихуана", "cannabis"),
     ("ko'knori", "poppy straw"), ("уксусный ангидрид", "acetic anhydride")],
)  # fmt: skip
def test_substance_spellings(written: str, substance: str) -> None:
    ev = event(convert("customs-csv", HEADER + f"1;14.03.2024;;Oybek;{written};1;kg;;;\n")[2])
    assert isinstance(ev.data, SeizureReported)
    assert ev.data.drugs[0].substance == substance


@pytest.mark.parametrize(
    ("quantity", "unit", "expected"),
    [("20032", "г", (20.032, "kg")), ("1,5", "кг", (1.5, "kg")), ("250", "мг", (0.00025, "kg")),
     ("500", "мл", (0.5, "l")), ("3", "л", (3.0, "l")), ("40", "шт", (40.0, "units")),
     ("120", "таб", (120.0, "units")), ("2", "t", (2000.0, "kg")), ("1 250", "gr", (1.25, "kg"))],
)  # fmt: skip
def test_quantities_and_units(quantity: str, unit: str, expected: tuple[float, str]) -> None:
    ev = event(
        convert("customs-csv", HEADER + f"1;14.03.2024;;Oybek;heroin;{quantity};{unit};;;\n")[2]
    )
    assert isinstance(ev.data, SeizureReported)
    assert (ev.data.drugs[0].quantity, ev.data.drugs[0].measure) == expected


def test_comma_separated_export_and_any_column_order() -> None:
    text = "Unit,Quantity,Substance,Post,Date,Reg_No,Inspector\nkg,2,heroin,Oybek,2024-03-14,7,X\n"
    ev = event(convert("customs-csv", text)[2])
    assert ev.id == "SCC-7"


def test_every_kind_of_bad_row_is_reported_and_the_file_goes_on() -> None:
    rows = [
        "1;14.03.2024;;Ойбек;героин;-3;г;;;",  # 2: quantity not positive
        "2;31.02.2024;25:00;Nowhere;sugar;abc;bags;T-J;x;",  # 3: everything wrong
        "3;14.03.2024;Oybek",  # 4: too few fields
        ";;;;;;;;;",  # blank row: skipped
        ";14.03.2024;;Oybek;heroin;1;kg;;;",  # 6: no reg_no
        "5;14.03.2024;;Oybek;heroin;1;kg;;;",  # 7: good
        "5;14.03.2024;;Oybek;heroin;2;kg;;;",  # 8: repeats the record of row 7
        "6;14.03.2024;;Oybek;heroin;1;kg;;;XX,1",  # 9: bad releasable_to (the schema says)
        "7;14.03.2024;;Fotehobod;heroin;1;kg;;;",  # 10: good: a unit of the topology
    ]
    text = (
        HEADER + "\n".join(rows) + "\n"
    ).encode() + b"\xff\xfe;14.03.2024;;Oybek;heroin;1;kg;;;\n"
    out = convert("customs-csv", text)
    assert set(out) == {2, 3, 4, 6, 7, 8, 9, 10, 11}
    assert errors(out[2]) == {"quantity": "must be a positive number, not '-3'"}
    assert set(errors(out[3])) == {
        "post",
        "date",
        "substance",
        "quantity",
        "unit",
        "route",
        "detained",
    }
    assert "unknown post 'Nowhere'" in errors(out[3])["post"]
    assert "unknown unit of measure 'bags'" in errors(out[3])["unit"]
    assert errors(out[4]) == {"(row)": "has 3 fields, the header has 10"}
    assert errors(out[6]) == {"reg_no": "required"}
    assert event(out[7]).id == "SCC-5"
    assert errors(out[8]) == {"(row)": "record SCC-5 repeats row 7"}
    assert "releasable_to" in errors(out[9])
    assert event(out[10]).unit == "BLO-FOTEHOBOD"
    assert "not UTF-8" in errors(out[11])["(row)"]


def test_a_header_without_required_columns_is_refused() -> None:
    with pytest.raises(FileUnreadable, match="reg_no, quantity"):
        convert("customs-csv", "date;post;substance;unit\n")


def test_the_criminal_case_number_is_the_seizures_shared_reference() -> None:
    header = "reg_no;date;post;substance;quantity;unit;case_no\n"
    rows = "26-0412/0153;14.03.2024;Ойбек;героин;20032;г;12-3456/2024\n26-0412/0154;14.03.2024;Oybek;gashish;1;kg;\n"
    outcomes = convert("customs-csv", header + rows)
    cased, plain = event(outcomes[2]).data, event(outcomes[3]).data
    assert isinstance(cased, SeizureReported)
    assert isinstance(plain, SeizureReported)
    assert (cased.case, plain.case) == ("12-3456/2024", None)
