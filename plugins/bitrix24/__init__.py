"""Bitrix24: contacts, companies, deals, activities and calls through the REST API (webhook or OAuth)."""
