"""Background jobs. `engine` (the jobs table, the context handlers get, the runner) imports
no handler; one module per job kind (`autolabel`, `segment_everything`, `export`,
`train`) imports the engine and the services below it; `kinds`, the kind -> handler
table, is imported by the shells (cli, server) only."""
