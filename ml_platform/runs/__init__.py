"""The lifecycle of a JobRun (an ETL run, a verification or a repair): queue, execute on the worker, record.

`records` creates the run rows and reaps dead ones, `specs` turns a job into the runner's `RunSpec`,
`lifecycle` queues and executes ETL runs (and holds their task entry point), `verify` does the same for
Verify and Repair. Callers import the module they need; nothing is re-exported here.
"""
