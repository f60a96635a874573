"""Telephony: Asterisk AMI, Mango Office and Zadarma calls on the timeline, screen pop and click-to-call."""
