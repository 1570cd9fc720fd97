"""Publishing to connected accounts: connections (REST), and the `webhook` and `x` publishers
plugged into the scheduler (server.scheduling)."""
