"""Telegram: a bot's private chats on the client's timeline, and replies sent from the hub."""
