-- 0011_lifecycle_event_subject: the customers with a lifecycle event, in
-- customer order, for ScanSubjects with that event's clock.
--
-- The job leader looks every minute for erasures whose legal minimum has
-- passed (a deletion_retained_until event before now). ScanSubjects went
-- through every customer in id order for that, with a subquery for the
-- event each: on a store of a million customers and none due, a scan of
-- them all a minute. With this index it reads the event's rows from the
-- cursor on, and stops at the page's limit.
CREATE INDEX subject_lifecycle_event_subject ON subject_lifecycle (event, subject_id, at);
