"""faultserver: a fault-injecting mock backend server."""

__version__ = "0.1.0"
