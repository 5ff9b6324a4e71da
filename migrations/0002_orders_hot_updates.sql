-- Applying a payment changes an order's state and transaction_id. With no index on those columns and
-- free space left in each page, PostgreSQL updates the row in place (a HOT update): no new index
-- entries per fact. Lookups by transaction_id go through payment_events, which has its own index.
DROP INDEX wxrecon.orders_transaction_id;
ALTER TABLE wxrecon.orders SET (fillfactor = 85);
