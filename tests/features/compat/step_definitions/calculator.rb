# Ruby steps for the cucumber-nagios comparison features (behave uses ../steps/arithmetic.py;
# it has no pending status, so 3-pending.feature runs under cucumber only).
Given(/^the number (\d+)$/) { |n| @total = n.to_i }
When(/^I add (\d+)$/) { |n| @total += n.to_i }
Then(/^the answer is (\d+)$/) { |n| raise "expected #{n}, got #{@total}" unless @total == n.to_i }
Given(/^a release that is not out yet$/) { pending }
