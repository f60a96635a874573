"""amoCRM: API client, OAuth, webhooks, mapping to the unified record, and a local sandbox of the API."""
