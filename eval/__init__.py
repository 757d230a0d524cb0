"""The evaluation harnesses (BFCL-v3, API-Bank, the held-out split), the summary, report, paired
comparison and benchmarks: scripts run as `python eval/<name>.py`, importable as `eval.<name>`."""
