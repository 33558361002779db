-- The local Matrix backend (README "Matrix backends") can write a plain batch of sends inside
-- the index's own statement, so a message's index row and its event commit together. Such a
-- statement must write nothing at all when one of the batch's rules fails (an unknown room, a
-- txnId already used, a sender not joined): this function, called by the event insert, aborts
-- the whole statement with SQLSTATE DA002, and the sends take the checked path instead.
CREATE FUNCTION local_matrix_plain_or_abort(ok BOOLEAN) RETURNS BOOLEAN LANGUAGE plpgsql AS $$
BEGIN
    IF NOT ok THEN
        RAISE EXCEPTION 'local Matrix batch is not plain' USING ERRCODE = 'DA002';
    END IF;
    RETURN true;
END $$;
