from semibench.cli import main

main()
