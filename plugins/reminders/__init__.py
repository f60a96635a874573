"""Reminders: the hub's own rules that put call-back, follow-up and check-the-deal tasks on the timeline."""
