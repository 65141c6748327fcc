"""The dispatch domain: intake, snapping, routing, workflow, escalation, statistics."""
