"""`python -m iotfin`: the `iotfin` command."""

from iotfin.main import main

if __name__ == "__main__":
    main()
