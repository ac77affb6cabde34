"""A run's report: report.md, its tables and figures, from the run's Parquet tables."""
