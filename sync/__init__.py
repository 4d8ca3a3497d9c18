"""pluvo-sync: keeps a Pluvo organisation in line with an HR system."""

__version__ = "0.1.0"
