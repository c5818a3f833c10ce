-- catalytics schema, SQLite, version 4: a per-organization version of the
-- names the export renders, bumped by triggers in the same transaction as
-- any change to them, so a process-wide cache of rendered names can tell
-- within a reader's snapshot whether it is still exact. Updates that only
-- move name_ts (most ingestion batches) do not bump it.

CREATE TABLE dictionary_versions (
    org_key INTEGER PRIMARY KEY,
    version INTEGER NOT NULL
);

CREATE TRIGGER components_dictionary_insert AFTER INSERT ON components
BEGIN
    INSERT INTO dictionary_versions (org_key, version) VALUES (NEW.org_key, 1)
        ON CONFLICT (org_key) DO UPDATE SET version = version + 1;
END;
CREATE TRIGGER components_dictionary_delete AFTER DELETE ON components
BEGIN
    INSERT INTO dictionary_versions (org_key, version) VALUES (OLD.org_key, 1)
        ON CONFLICT (org_key) DO UPDATE SET version = version + 1;
END;
CREATE TRIGGER components_dictionary_update AFTER UPDATE ON components
WHEN OLD.org_key IS NOT NEW.org_key
    OR OLD.external_id IS NOT NEW.external_id
    OR OLD.display_name IS NOT NEW.display_name
    OR OLD.catalogs_label IS NOT NEW.catalogs_label
    OR OLD.category_key IS NOT NEW.category_key
    OR OLD.manufacturer_key IS NOT NEW.manufacturer_key
BEGIN
    INSERT INTO dictionary_versions (org_key, version) VALUES (NEW.org_key, 1)
        ON CONFLICT (org_key) DO UPDATE SET version = version + 1;
    INSERT INTO dictionary_versions (org_key, version) VALUES (OLD.org_key, 1)
        ON CONFLICT (org_key) DO UPDATE SET version = version + 1;
END;

CREATE TRIGGER users_dictionary_insert AFTER INSERT ON users
BEGIN
    INSERT INTO dictionary_versions (org_key, version) VALUES (NEW.org_key, 1)
        ON CONFLICT (org_key) DO UPDATE SET version = version + 1;
END;
CREATE TRIGGER users_dictionary_delete AFTER DELETE ON users
BEGIN
    INSERT INTO dictionary_versions (org_key, version) VALUES (OLD.org_key, 1)
        ON CONFLICT (org_key) DO UPDATE SET version = version + 1;
END;
CREATE TRIGGER users_dictionary_update AFTER UPDATE ON users
WHEN OLD.org_key IS NOT NEW.org_key
    OR OLD.external_id IS NOT NEW.external_id
    OR OLD.email IS NOT NEW.email
BEGIN
    INSERT INTO dictionary_versions (org_key, version) VALUES (NEW.org_key, 1)
        ON CONFLICT (org_key) DO UPDATE SET version = version + 1;
    INSERT INTO dictionary_versions (org_key, version) VALUES (OLD.org_key, 1)
        ON CONFLICT (org_key) DO UPDATE SET version = version + 1;
END;

CREATE TRIGGER applications_dictionary_insert AFTER INSERT ON applications
BEGIN
    INSERT INTO dictionary_versions (org_key, version) VALUES (NEW.org_key, 1)
        ON CONFLICT (org_key) DO UPDATE SET version = version + 1;
END;
CREATE TRIGGER applications_dictionary_delete AFTER DELETE ON applications
BEGIN
    INSERT INTO dictionary_versions (org_key, version) VALUES (OLD.org_key, 1)
        ON CONFLICT (org_key) DO UPDATE SET version = version + 1;
END;
CREATE TRIGGER applications_dictionary_update AFTER UPDATE ON applications
WHEN OLD.org_key IS NOT NEW.org_key
    OR OLD.name IS NOT NEW.name
BEGIN
    INSERT INTO dictionary_versions (org_key, version) VALUES (NEW.org_key, 1)
        ON CONFLICT (org_key) DO UPDATE SET version = version + 1;
    INSERT INTO dictionary_versions (org_key, version) VALUES (OLD.org_key, 1)
        ON CONFLICT (org_key) DO UPDATE SET version = version + 1;
END;

CREATE TRIGGER projects_dictionary_insert AFTER INSERT ON projects
BEGIN
    INSERT INTO dictionary_versions (org_key, version) VALUES (NEW.org_key, 1)
        ON CONFLICT (org_key) DO UPDATE SET version = version + 1;
END;
CREATE TRIGGER projects_dictionary_delete AFTER DELETE ON projects
BEGIN
    INSERT INTO dictionary_versions (org_key, version) VALUES (OLD.org_key, 1)
        ON CONFLICT (org_key) DO UPDATE SET version = version + 1;
END;
CREATE TRIGGER projects_dictionary_update AFTER UPDATE ON projects
WHEN OLD.org_key IS NOT NEW.org_key
    OR OLD.external_id IS NOT NEW.external_id
BEGIN
    INSERT INTO dictionary_versions (org_key, version) VALUES (NEW.org_key, 1)
        ON CONFLICT (org_key) DO UPDATE SET version = version + 1;
    INSERT INTO dictionary_versions (org_key, version) VALUES (OLD.org_key, 1)
        ON CONFLICT (org_key) DO UPDATE SET version = version + 1;
END;

CREATE TRIGGER categories_dictionary_insert AFTER INSERT ON categories
BEGIN
    INSERT INTO dictionary_versions (org_key, version) VALUES (NEW.org_key, 1)
        ON CONFLICT (org_key) DO UPDATE SET version = version + 1;
END;
CREATE TRIGGER categories_dictionary_delete AFTER DELETE ON categories
BEGIN
    INSERT INTO dictionary_versions (org_key, version) VALUES (OLD.org_key, 1)
        ON CONFLICT (org_key) DO UPDATE SET version = version + 1;
END;
CREATE TRIGGER categories_dictionary_update AFTER UPDATE ON categories
WHEN OLD.org_key IS NOT NEW.org_key
    OR OLD.name IS NOT NEW.name
BEGIN
    INSERT INTO dictionary_versions (org_key, version) VALUES (NEW.org_key, 1)
        ON CONFLICT (org_key) DO UPDATE SET version = version + 1;
    INSERT INTO dictionary_versions (org_key, version) VALUES (OLD.org_key, 1)
        ON CONFLICT (org_key) DO UPDATE SET version = version + 1;
END;

CREATE TRIGGER manufacturers_dictionary_insert AFTER INSERT ON manufacturers
BEGIN
    INSERT INTO dictionary_versions (org_key, version) VALUES (NEW.org_key, 1)
        ON CONFLICT (org_key) DO UPDATE SET version = version + 1;
END;
CREATE TRIGGER manufacturers_dictionary_delete AFTER DELETE ON manufacturers
BEGIN
    INSERT INTO dictionary_versions (org_key, version) VALUES (OLD.org_key, 1)
        ON CONFLICT (org_key) DO UPDATE SET version = version + 1;
END;
CREATE TRIGGER manufacturers_dictionary_update AFTER UPDATE ON manufacturers
WHEN OLD.org_key IS NOT NEW.org_key
    OR OLD.name IS NOT NEW.name
BEGIN
    INSERT INTO dictionary_versions (org_key, version) VALUES (NEW.org_key, 1)
        ON CONFLICT (org_key) DO UPDATE SET version = version + 1;
    INSERT INTO dictionary_versions (org_key, version) VALUES (OLD.org_key, 1)
        ON CONFLICT (org_key) DO UPDATE SET version = version + 1;
END;
