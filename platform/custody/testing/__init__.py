"""Support for tests, benchmarks and CI: real servers, started and stopped on loopback."""
