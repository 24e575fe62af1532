"""Data contracts: job specs, stage configs and the Arrow schemas of every table. Imports nothing of ours."""
