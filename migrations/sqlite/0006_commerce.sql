-- The content library (practice events, audio), the marketplace (packs, access) and payments
-- (Stripe checkouts, webhook events, subscriptions).

-- Audio of a content item: pending until the audio job has run, then ready, unavailable (no
-- text-to-speech configured) or failed.
ALTER TABLE content_items ADD COLUMN audio_status TEXT;
ALTER TABLE content_items ADD COLUMN audio_key TEXT;

-- One play of a content item by a user; completed when the user finishes it.
CREATE TABLE practice_events (
    id               TEXT PRIMARY KEY,
    user_id          TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    content_id       TEXT NOT NULL REFERENCES content_items(id) ON DELETE CASCADE,
    started_at       BIGINT NOT NULL,
    completed_at     BIGINT,
    duration_seconds BIGINT,
    created_at       BIGINT NOT NULL
);
CREATE INDEX practice_events_user ON practice_events (user_id, created_at);

-- Durable follow-up jobs that synthesise a content item's audio after its text is saved.
CREATE TABLE audio_jobs (
    content_id  TEXT PRIMARY KEY REFERENCES content_items(id) ON DELETE CASCADE,
    status      TEXT NOT NULL,              -- queued | running | done | failed
    attempts    BIGINT NOT NULL DEFAULT 0,
    error       TEXT,
    run_after   BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE INDEX audio_jobs_status ON audio_jobs (status, run_after);

-- Packs of content published by an organisation's staff (the creators).
CREATE TABLE packs (
    id                    TEXT PRIMARY KEY,
    org_id                TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    creator_id            TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    title                 TEXT NOT NULL,
    description           TEXT NOT NULL,
    tags                  TEXT NOT NULL DEFAULT '[]',
    price_type            TEXT NOT NULL,    -- free | one_time | subscription
    price_cents           BIGINT NOT NULL,
    currency              TEXT NOT NULL,
    subscription_interval TEXT,             -- month | year, for subscriptions
    status                TEXT NOT NULL,    -- draft | published
    published_at          BIGINT,
    created_at            BIGINT NOT NULL,
    updated_at            BIGINT NOT NULL
);
CREATE INDEX packs_org ON packs (org_id, status, created_at);

CREATE TABLE pack_items (
    pack_id     TEXT NOT NULL REFERENCES packs(id) ON DELETE CASCADE,
    content_id  TEXT NOT NULL REFERENCES content_items(id) ON DELETE CASCADE,
    position    BIGINT NOT NULL,
    PRIMARY KEY (pack_id, content_id)
);
CREATE INDEX pack_items_content ON pack_items (content_id);

-- Who may use a pack, and why; revoked on refund or when a subscription ends.
CREATE TABLE pack_access (
    user_id     TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    pack_id     TEXT NOT NULL REFERENCES packs(id) ON DELETE CASCADE,
    source      TEXT NOT NULL,              -- free | purchase | subscription
    reference   TEXT NOT NULL,              -- checkout session or subscription id
    granted_at  BIGINT NOT NULL,
    revoked_at  BIGINT,
    PRIMARY KEY (user_id, pack_id)
);

-- Checkout sessions created with Stripe, so a webhook is matched to what was sold.
CREATE TABLE payment_checkouts (
    id              TEXT PRIMARY KEY,       -- Stripe checkout session id
    user_id         TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    org_id          TEXT NOT NULL,
    kind            TEXT NOT NULL,          -- pack | credits
    pack_id         TEXT,
    credit_pack     TEXT,
    credits_amount  BIGINT,
    amount_cents    BIGINT NOT NULL,
    status          TEXT NOT NULL,          -- open | completed | refunded
    payment_intent  TEXT,
    subscription_id TEXT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX payment_checkouts_intent ON payment_checkouts (payment_intent);

-- Every webhook event handled, by Stripe's event id: a replay finds its row and changes nothing.
CREATE TABLE stripe_events (
    id           TEXT PRIMARY KEY,
    type         TEXT NOT NULL,
    created      BIGINT NOT NULL,            -- Stripe's `created`, seconds
    received_at  BIGINT NOT NULL
);

CREATE TABLE subscriptions (
    id                TEXT PRIMARY KEY,      -- Stripe subscription id
    user_id           TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    org_id            TEXT NOT NULL,
    pack_id           TEXT NOT NULL REFERENCES packs(id) ON DELETE CASCADE,
    status            TEXT NOT NULL,         -- active | paused | past_due | canceled
    item_id           TEXT,                  -- Stripe subscription item, for plan changes
    price_cents       BIGINT NOT NULL,
    cancel_at_period_end BIGINT NOT NULL DEFAULT 0,
    current_period_end   BIGINT,
    last_event_at     BIGINT NOT NULL,       -- Stripe `created` of the newest event applied, seconds
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL
);
CREATE INDEX subscriptions_user ON subscriptions (user_id, created_at);
