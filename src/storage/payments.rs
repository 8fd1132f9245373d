//! Payments: the checkout sessions created with Stripe, the webhook events already handled, and
//! subscriptions as the webhooks report them.

use sqlx::FromRow;

use super::{now_ms, Db, PageCursor};

#[derive(Debug, Clone, FromRow)]
pub struct CheckoutRow {
    pub id: String,
    pub user_id: String,
    pub org_id: String,
    pub kind: String,
    pub pack_id: Option<String>,
    pub credit_pack: Option<String>,
    pub credits_amount: Option<i64>,
    pub amount_cents: i64,
    pub status: String,
    pub payment_intent: Option<String>,
    pub subscription_id: Option<String>,
}

const CHECKOUT_COLUMNS: &str = "id, user_id, org_id, kind, pack_id, credit_pack, credits_amount, \
     amount_cents, status, payment_intent, subscription_id";

pub struct NewCheckout<'a> {
    pub id: &'a str,
    pub user_id: &'a str,
    pub org_id: &'a str,
    pub kind: &'a str,
    pub pack_id: Option<&'a str>,
    pub credit_pack: Option<&'a str>,
    pub credits_amount: Option<i64>,
    pub amount_cents: i64,
}

#[derive(Debug, Clone, FromRow)]
pub struct SubscriptionRow {
    pub id: String,
    pub user_id: String,
    pub org_id: String,
    pub pack_id: String,
    pub status: String,
    pub item_id: Option<String>,
    pub price_cents: i64,
    pub cancel_at_period_end: i64,
    pub current_period_end: Option<i64>,
    pub last_event_at: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

const SUBSCRIPTION_COLUMNS: &str = "id, user_id, org_id, pack_id, status, item_id, price_cents, \
     cancel_at_period_end, current_period_end, last_event_at, created_at, updated_at";

/// What a subscription event or API answer says about a subscription.
pub struct SubscriptionState<'a> {
    pub id: &'a str,
    pub user_id: &'a str,
    pub org_id: &'a str,
    pub pack_id: &'a str,
    pub status: &'a str,
    pub item_id: Option<&'a str>,
    pub price_cents: i64,
    pub cancel_at_period_end: bool,
    pub current_period_end: Option<i64>,
    /// Stripe's `created` of the event (seconds); older states never overwrite newer ones.
    pub event_at: i64,
}

impl Db {
    pub async fn insert_checkout(&self, c: NewCheckout<'_>) -> sqlx::Result<()> {
        let now = now_ms();
        sqlx::query(
            "INSERT INTO payment_checkouts (id, user_id, org_id, kind, pack_id, credit_pack, credits_amount, \
             amount_cents, status, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'open', $9, $9) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(c.id)
        .bind(c.user_id)
        .bind(c.org_id)
        .bind(c.kind)
        .bind(c.pack_id)
        .bind(c.credit_pack)
        .bind(c.credits_amount)
        .bind(c.amount_cents)
        .bind(now)
        .execute(&self.pool)
        .await
        .map(|_| ())
    }

    pub async fn checkout_in(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        id: &str,
    ) -> sqlx::Result<Option<CheckoutRow>> {
        sqlx::query_as(&format!(
            "SELECT {CHECKOUT_COLUMNS} FROM payment_checkouts WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&mut **tx)
        .await
    }

    pub async fn checkout_by_intent_in(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        payment_intent: &str,
    ) -> sqlx::Result<Option<CheckoutRow>> {
        sqlx::query_as(&format!(
            "SELECT {CHECKOUT_COLUMNS} FROM payment_checkouts WHERE payment_intent = $1"
        ))
        .bind(payment_intent)
        .fetch_optional(&mut **tx)
        .await
    }

    /// Moves a checkout to `status`, recording what Stripe reported about it.
    pub async fn update_checkout(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        id: &str,
        status: &str,
        payment_intent: Option<&str>,
        subscription_id: Option<&str>,
    ) -> sqlx::Result<()> {
        sqlx::query(
            "UPDATE payment_checkouts SET status = $2, payment_intent = COALESCE($3, payment_intent), \
             subscription_id = COALESCE($4, subscription_id), updated_at = $5 WHERE id = $1",
        )
        .bind(id)
        .bind(status)
        .bind(payment_intent)
        .bind(subscription_id)
        .bind(now_ms())
        .execute(&mut **tx)
        .await
        .map(|_| ())
    }

    /// Claims a webhook event id; false when it was handled before (a replay).
    pub async fn claim_stripe_event(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        id: &str,
        kind: &str,
        created: i64,
    ) -> sqlx::Result<bool> {
        let done = sqlx::query(
            "INSERT INTO stripe_events (id, type, created, received_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(id)
        .bind(kind)
        .bind(created)
        .bind(now_ms())
        .execute(&mut **tx)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn subscription_in(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        id: &str,
    ) -> sqlx::Result<Option<SubscriptionRow>> {
        sqlx::query_as(&format!(
            "SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&mut **tx)
        .await
    }

    pub async fn subscription(&self, id: &str) -> sqlx::Result<Option<SubscriptionRow>> {
        sqlx::query_as(&format!(
            "SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
    }

    pub async fn subscriptions_of(
        &self,
        user_id: &str,
        cursor: Option<&PageCursor>,
        limit: u32,
    ) -> sqlx::Result<Vec<SubscriptionRow>> {
        let (at, id) = cursor
            .cloned()
            .unwrap_or((i64::MAX, String::from("\u{10FFFF}")));
        sqlx::query_as(&format!(
            "SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions WHERE user_id = $1 \
             AND (created_at < $2 OR (created_at = $2 AND id < $3)) \
             ORDER BY created_at DESC, id DESC LIMIT $4"
        ))
        .bind(user_id)
        .bind(at)
        .bind(id)
        .bind(i64::from(limit) + 1)
        .fetch_all(&self.pool)
        .await
    }

    /// Applies a subscription state unless a newer event was already applied; true when applied.
    pub async fn apply_subscription(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        s: SubscriptionState<'_>,
    ) -> sqlx::Result<bool> {
        let now = now_ms();
        let done = sqlx::query(
            "INSERT INTO subscriptions (id, user_id, org_id, pack_id, status, item_id, price_cents, \
             cancel_at_period_end, current_period_end, last_event_at, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11) \
             ON CONFLICT (id) DO UPDATE SET status = $5, item_id = COALESCE($6, subscriptions.item_id), \
             price_cents = $7, cancel_at_period_end = $8, \
             current_period_end = COALESCE($9, subscriptions.current_period_end), last_event_at = $10, updated_at = $11 \
             WHERE subscriptions.last_event_at <= $10 AND subscriptions.status <> 'canceled'",
        )
        .bind(s.id)
        .bind(s.user_id)
        .bind(s.org_id)
        .bind(s.pack_id)
        .bind(s.status)
        .bind(s.item_id)
        .bind(s.price_cents)
        .bind(i64::from(s.cancel_at_period_end))
        .bind(s.current_period_end)
        .bind(s.event_at)
        .bind(now)
        .execute(&mut **tx)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}
