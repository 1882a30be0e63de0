from iotfin.cli import main

main()
