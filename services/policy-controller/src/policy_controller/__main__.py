"""`python -m policy_controller serve ...`: the same as the `policy-controller` command."""

from policy_controller.cli import main

if __name__ == "__main__":
    main()
