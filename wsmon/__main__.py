from wsmon.cli import main

main()
