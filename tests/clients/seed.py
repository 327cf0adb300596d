"""The seed's Question 1 (../shared/seed): the federated join, verbatim, under the names the
seed gives its tables. Tests and benchmarks that run it elsewhere substitute their own."""

ORDERS = "hive.default.orders"
PRODUCTS = "mysql.productsdb.products"

QUESTION_1 = f"""SELECT 
    o.order_id,
    o.customer_id,
    o.order_date,
    p.product_name,
    p.category,
    o.quantity,
    (o.quantity * p.price) AS total_value
FROM {ORDERS} o
JOIN {PRODUCTS} p
    ON o.product_id = p.product_id
WHERE o.order_date >= DATE '2025-01-01'
ORDER BY o.order_date DESC"""


def question_1(orders: str = ORDERS, products: str = PRODUCTS) -> str:
    """The seed's query with its orders and products tables named `orders` and `products`."""
    return QUESTION_1.replace(ORDERS, orders).replace(PRODUCTS, products)
