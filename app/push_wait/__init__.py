"""Waiting for push answers on an event loop, many waits at once and no thread each.

- `waiter`: one poller per process asks the database what moved, for every wait at once;
- `fanout`: the Redis subscription that makes it ask the moment a web node announces an answer;
- `events`: the push event stream, `GET /push/events?token=...` (text/event-stream): a login
  page waiting for its push is told "look now" the moment the push is answered (`um2fa
  push-events`, or a thread of `um2fa serve`).

The RADIUS door (radius/server.py) uses the first two for the VPN's push logins.
"""

STREAM_PATH = "/push/events"  # where pages connect (the app links to it: app/web/push_stream.py)
