"""Hang: exits at once with an error, before listening."""
import sys

sys.exit("sum server: missing configuration file sum.conf")
