from selfinstruct.cli import main

main()
