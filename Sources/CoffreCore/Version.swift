/// Coffre's release number, printed by `coffre --version` with the commit it was built from.
public let coffreVersion = "0.13.0"
