"""What users take away from a pool: stats, the HTML report, exports, dedup of any dataset."""
