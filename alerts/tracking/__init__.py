"""Click tracking: tracked links in alerts, the /r/ redirect's recording, machine clicks, retention."""
