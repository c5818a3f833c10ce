-- Lets the dictionary change log of migration 6 be pruned without the
-- version it yields ever moving backwards or standing still across a
-- change (see export.rs and docs/decisions.md, "The dictionary change
-- log is pruned without moving a version"). Each process prunes every ten
-- minutes under the partition maintenance lock (mod.rs).
--
-- An organization's dictionary version becomes
--
--     its `pruned` count here (0 without a row) + its rows left in
--     dictionary_changes,
--
-- both read by the same statement, hence from one snapshot. A prune
-- deletes some of an organization's rows and adds their number to its
-- count in ONE transaction, so every snapshot sees either both or
-- neither: the sum, and so the version, is the same before and after,
-- and a cached dictionary stays valid.
--
-- Concurrency:
-- * Ingestion inserts rows while a prune runs: the prune's DELETE deletes
--   only rows committed before its snapshot and counts exactly the rows
--   it deleted (RETURNING), so a row committed later is neither lost nor
--   counted twice; it shows in the sum when its own transaction commits.
-- * Two prunes at once (the maintenance lock makes that rare): a row the
--   other one deleted first is skipped by the waiting DELETE and not
--   returned, so it is counted once; the counter's upsert adds each
--   prune's own number under the row lock.
-- * A reader's snapshot sees the committed transactions as a prefix of
--   one visibility order. Every logged change adds at least one to the
--   sum and a prune adds zero, so along that order the sum never goes
--   down and rises with every change: two snapshots with the same version
--   see the same changes, as before pruning, and a stale dictionary can
--   never look current.
CREATE TABLE dictionary_pruned (
    org_key bigint PRIMARY KEY,
    pruned  bigint NOT NULL CHECK (pruned >= 0)
);
