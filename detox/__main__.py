from detox.cli import main

main()
