"""pytest plugin: fixtures only (the handle lives in `faultserver.testing`)."""
