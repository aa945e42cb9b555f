"""Helpers shared by the tests (never test modules themselves): scripted links, signals,
stimulators that record, settings for a shared CI machine."""
