"""The engine: job loading, Ray runtime, stage runner, ledger, artifact store, reports and the CLI."""
