"""``labctl serve``: one process per station that owns its instruments, runs a queue
on the existing runner, and serves an HTTP + WebSocket API and the monitor page
(issue 16, DESIGN.md section 11).  Safety stays where it was: the runner's guard,
the station's limits and interlocks and the safe shutdown run in this process and
apply to every request, whoever sends it."""
