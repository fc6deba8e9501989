"""Test support: real components on free loopback ports (services) and condition waits (waiting)."""
