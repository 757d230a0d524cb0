"""The evaluation harnesses (BFCL-v3, API-Bank, the held-out split), the summary, report and paired
comparison: scripts run as `python eval/<name>.py`, importable as `eval.<name>`. The speed benchmark
lives in bench/."""
