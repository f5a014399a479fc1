"""What the tests run on: real servers on loopback ports (`servers`), Redis Clusters
(`clusters`), a clock the tests move (`clock`), and the modules the servers they start
import (`granian_app`, `slow_verb`). The fixtures over them are in tests/conftest.py."""
