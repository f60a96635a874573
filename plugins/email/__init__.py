"""Email: company mailboxes read over IMAP into the timeline, and email sent over SMTP recorded the same way."""
