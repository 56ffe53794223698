"""Running the pipeline: one pass wiring stages to I/O (pipeline), feed scheduling policy and leases (scheduling), passes (ingest) and the long-running scheduler."""
