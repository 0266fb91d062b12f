-- The packages' change counter (`StateStore::packages_version`): bumped in
-- the same transaction as every write to oprc_packages, so a node that
-- polls it and sees a new value also sees the change that made it.
CREATE TABLE oprc_packages_version (
    singleton BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (singleton),
    version   BIGINT NOT NULL
);

INSERT INTO oprc_packages_version (singleton, version) VALUES (TRUE, 0);

CREATE FUNCTION oprc_bump_packages_version() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE oprc_packages_version SET version = version + 1;
    RETURN NULL;
END
$$;

CREATE TRIGGER oprc_packages_changed
AFTER INSERT OR UPDATE OR DELETE ON oprc_packages
FOR EACH STATEMENT EXECUTE FUNCTION oprc_bump_packages_version();
