# Ruby steps for the cucumber-nagios comparison features (the same steps as steps/calculator.py).
Given(/^the number (\d+)$/) { |n| @total = n.to_i }
When(/^I add (\d+)$/) { |n| @total += n.to_i }
Then(/^the answer is (\d+)$/) { |n| raise "expected #{n}, got #{@total}" unless @total == n.to_i }
Given(/^a release that is not out yet$/) { pending }
