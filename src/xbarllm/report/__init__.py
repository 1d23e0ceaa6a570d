"""Reports: paper-vs-ours reproduction rows (and later the HTML report)."""
