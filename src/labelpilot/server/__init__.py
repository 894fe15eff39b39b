"""The FastAPI shell: `app` (errors answered with their `http_status`), `deps`, `schemas`,
`routes/` one module per resource. Routes parse, call a service and shape the answer;
nothing below imports the server."""
