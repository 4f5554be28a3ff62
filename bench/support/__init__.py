"""What the figures share: processes and their memory and CPU, a throwaway PostgreSQL, payloads,
the raw limits of Redis and SQL, the report's tables; imported by the figures, importing none."""
