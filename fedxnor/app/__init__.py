"""The top of fedxnor: the `fedxnor` command (cli), the main job end to end (flow, its TOML config and
pre-flight checks) and the reports. It may import every stage; no stage imports it (docs/architecture.md)."""
