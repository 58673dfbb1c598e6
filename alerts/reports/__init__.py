"""Read-only figures for staff: an alert's report, the dashboard's series, a subscriber's history."""
