"""The blast engine: one module per step in the life of an alert's sending.

1. `state.start_blast` fixes the first recipients (confirmed, not suppressed, matching the
   audience) by writing one `queued` row per (alert, subscriber); the unique key makes a
   second write harmless. `dispatch.fill` fixes the rest a chunk at a time while batches go out.
2. `dispatch.dispatch` cuts the queued rows into id ranges; one batch task per range.
3. `sending.send_batch` claims its range's queued rows in one UPDATE (a row is claimed by
   exactly one worker, whatever the database), builds (`content`) and sends them over one SMTP
   connection; the `recorder` commits outcomes every few milliseconds; transient failures go
   back to `queued`.
4. `recovery.sweep` (Celery beat) returns rows whose worker died to `queued` and re-dispatches
   blasts that stopped moving (a lost task, a restarted Redis).
`control` is the entry point for the staff pages and the command line; `progress` reads.
"""
