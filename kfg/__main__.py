from kfg.cli import main

main()
