-- What a 0 -> 1M fill costs inside PostgreSQL under four table designs,
-- beside the raw upsert floor of the bench report's PostgreSQL fill row:
-- the measurement behind "Where a fill's time goes" in
-- benches/README.md. Every design runs as a stored procedure (no client), 100
-- transactions of 10,000 random PIDs (p- + 12 hex, the same PIDs for every
-- design), each from empty after a checkpoint.
--
--   psql -X -q -f benches/postgres_designs.sql "$URL"
--
-- in a scratch database, as a superuser or a role with `pg_checkpoint`
-- (each run starts after a CHECKPOINT). It writes the schema
-- `fill_designs`, and drops it at the end. It prints one line per run: the
-- design and its seconds; a design's share of the floor's rate is the
-- floor's seconds over the design's, in the same run of the script. The
-- whole script takes about two minutes here.
-- Designs:
--   floor         INSERT ... ON CONFLICT DO UPDATE of (segment, pid,
--                 first_added_at, last_added_at), key (segment, pid).
--   store         PostgresStore's tables and statements for a fill: number
--                 the new people (an insert that skips known ones), insert
--                 their memberships, one ledger row per member in the
--                 caller's order, move the org's head.
--   min           the least a list-order index and a ledger need: one
--                 membership table keyed (org, segment, pid), its list-order
--                 index, upserted with ON CONFLICT DO NOTHING (the lookup and
--                 the insert in one), one ledger row per call (arrays); no
--                 way to find one person's timeline.
--   min_timeline  min, with one B-tree more for the per-person timeline,
--                 (org, pid), and each membership's ledger seqs in its row.
--   min_plain     min, with a plain ledger instead: a row per entry, keyed
--                 (org, seq), in the caller's order (still no timeline).
\set ON_ERROR_STOP on
SET client_min_messages = warning;
DROP SCHEMA IF EXISTS fill_designs CASCADE;
CREATE SCHEMA fill_designs;
SET search_path TO fill_designs;

-- Each batch's PIDs in PID order (as a store receives them), and the
-- caller's order: a random permutation of their places, which the ledger
-- entries follow.
CREATE TABLE batches (b int PRIMARY KEY, pids text[] NOT NULL, caller int[] NOT NULL);
INSERT INTO batches
SELECT b,
       (SELECT array_agg(p ORDER BY p)
        FROM (SELECT 'p-' || substr(md5(random()::text || b || g), 1, 12) AS p
              FROM generate_series(1, 10000) AS g) AS s),
       (SELECT array_agg(g ORDER BY random()) FROM generate_series(1, 10000) AS g)
FROM generate_series(0, 99) AS b;
CREATE TABLE heads (org text COLLATE "C" PRIMARY KEY, last_seq bigint NOT NULL, last_at bigint NOT NULL);
CREATE TABLE results (run serial, design text, seconds double precision);

-- (Re)creates the tables of every design, empty.
CREATE PROCEDURE fresh() LANGUAGE plpgsql AS $$
BEGIN
    DROP TABLE IF EXISTS floor, people, memberships, ledger, mm, lb;
    TRUNCATE heads;
    INSERT INTO heads VALUES ('acme', 0, 0);
    CREATE TABLE floor (segment bigint, pid text COLLATE "C", first_added_at bigint,
        last_added_at bigint, PRIMARY KEY (segment, pid));
    -- PostgresStore's (schema.rs), the columns a fill writes.
    CREATE TABLE people (org text COLLATE "C" NOT NULL, pid text COLLATE "C" NOT NULL,
        person bigint GENERATED ALWAYS AS IDENTITY, PRIMARY KEY (org, pid), UNIQUE (org, person));
    CREATE TABLE memberships (org text COLLATE "C" NOT NULL, segment uuid NOT NULL,
        person bigint NOT NULL, pid text COLLATE "C" NOT NULL, first_added_at bigint NOT NULL,
        last_added_at bigint NOT NULL, removed_at bigint, PRIMARY KEY (org, segment, person));
    CREATE INDEX memberships_active ON memberships (org, segment, first_added_at, pid)
        INCLUDE (last_added_at, person) WHERE removed_at IS NULL;
    CREATE INDEX memberships_removed ON memberships (org, segment, first_added_at, pid)
        INCLUDE (person) WHERE removed_at IS NOT NULL;
    CREATE TABLE ledger (org text COLLATE "C" NOT NULL, seq bigint NOT NULL, at bigint NOT NULL,
        request_id text, segment uuid NOT NULL, kind smallint NOT NULL, person bigint, name text,
        description text, op bigint, PRIMARY KEY (org, seq));
    CREATE INDEX ledger_by_person ON ledger (org, person, seq) WHERE person IS NOT NULL;
    -- The minimal design.
    CREATE TABLE mm (org text COLLATE "C" NOT NULL, segment uuid NOT NULL,
        pid text COLLATE "C" NOT NULL, first_added_at bigint NOT NULL,
        last_added_at bigint NOT NULL, removed_at bigint, events bigint[]);
    CREATE UNIQUE INDEX mm_key ON mm (org, segment, pid);
    CREATE INDEX mm_active ON mm (org, segment, first_added_at, pid)
        INCLUDE (last_added_at) WHERE removed_at IS NULL;
    CREATE TABLE lb (org text COLLATE "C" NOT NULL, seq bigint NOT NULL, at bigint NOT NULL,
        segment uuid NOT NULL, kinds smallint[] NOT NULL, pids text[] NOT NULL,
        PRIMARY KEY (org, seq));
END $$;

CREATE PROCEDURE fill(design text) LANGUAGE plpgsql AS $$
DECLARE
    p text[];
    caller int[];
    persons bigint[];
    numbered text[];
    now bigint;
    base bigint;
    seg uuid := '0184e1a0-0000-7000-8000-000000000001';
BEGIN
    FOR i IN 0..99 LOOP
        SELECT pids, batches.caller INTO p, caller FROM batches WHERE b = i;
        now := (extract(epoch FROM clock_timestamp()) * 1e6)::bigint;
        IF design = 'floor' THEN
            INSERT INTO floor SELECT 1, u, now, now FROM unnest(p) AS u
            ON CONFLICT (segment, pid) DO UPDATE SET last_added_at = excluded.last_added_at;
            COMMIT;
            CONTINUE;
        END IF;
        SELECT last_seq INTO base FROM heads WHERE org = 'acme' FOR UPDATE;
        IF design = 'store' THEN
            -- New people first: the insert's key check finds who is new.
            WITH n AS (INSERT INTO people (org, pid) SELECT 'acme', u FROM unnest(p) AS u
                       ON CONFLICT (org, pid) DO NOTHING RETURNING pid, person)
            SELECT array_agg(person), array_agg(pid) INTO persons, numbered FROM n;
            INSERT INTO memberships (org, segment, person, pid, first_added_at, last_added_at)
            SELECT 'acme', seg, u.person, u.pid, now, now
            FROM unnest(persons, numbered) AS u (person, pid);
            -- The caller's order: not the PID order the people were numbered in.
            INSERT INTO ledger (org, seq, at, segment, kind, person)
            SELECT 'acme', base + k, now, seg, 2, persons[caller[k]]
            FROM generate_subscripts(caller, 1) AS k;
        ELSE
            INSERT INTO mm (org, segment, pid, first_added_at, last_added_at, events)
            SELECT 'acme', seg, u, now, now,
                   CASE WHEN design = 'min_timeline' THEN ARRAY[base + o] END
            FROM unnest(p) WITH ORDINALITY AS t (u, o)
            ON CONFLICT (org, segment, pid) DO NOTHING;
            IF design = 'min_plain' THEN
                INSERT INTO ledger (org, seq, at, segment, kind, name)
                SELECT 'acme', base + k, now, seg, 2, p[caller[k]]
                FROM generate_subscripts(caller, 1) AS k;
            ELSE
                INSERT INTO lb VALUES ('acme', base + 1, now, seg,
                                       array_fill(2::smallint, ARRAY[10000]), p);
            END IF;
        END IF;
        UPDATE heads SET last_seq = base + 10000, last_at = now WHERE org = 'acme';
        COMMIT;
    END LOOP;
END $$;

-- One timed run of `design`, from empty tables after a checkpoint.
CREATE PROCEDURE run(design text) LANGUAGE plpgsql AS $$
DECLARE
    started timestamptz;
BEGIN
    CALL fresh();
    IF design = 'min_timeline' THEN
        CREATE INDEX mm_person ON mm (org, pid);
    END IF;
    COMMIT;
    CHECKPOINT;
    started := clock_timestamp();
    CALL fill(design);
    INSERT INTO results (design, seconds)
    VALUES (design, extract(epoch FROM clock_timestamp() - started));
    COMMIT;
END $$;

CALL run('floor');
CALL run('store');
CALL run('min');
CALL run('min_timeline');
CALL run('min_plain');
CALL run('floor');
CALL run('store');
CALL run('min');
CALL run('min_timeline');
CALL run('min_plain');
SELECT design, round(seconds::numeric, 2) AS seconds FROM results ORDER BY run;
SET search_path TO public;
DROP SCHEMA fill_designs CASCADE;
