"""The tests' throwaway PostgreSQL cluster: `local_postgres`, which the benchmark and `make cluster` use too (a
product tool must not import from the tests, so the code lives there)."""

from local_postgres import NOT_INSTALLED, PostgresCluster, find_bin_dir, start_cluster

__all__ = ["NOT_INSTALLED", "PostgresCluster", "find_bin_dir", "start_cluster"]
