// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

/// @notice Forwards the native coin it receives: an "internal transfer" that only a trace shows.
/// Sending plain value forwards to the target fixed at deploy; forward(to) forwards anywhere.
contract Forwarder {
    address payable public immutable target;

    event Forwarded(address indexed from, address indexed to, uint256 amount);

    error ForwardFailed(address to, uint256 amount);

    constructor(address payable target_) {
        target = target_;
    }

    receive() external payable {
        _send(target, msg.value);
    }

    function forward(address payable to) external payable {
        _send(to, msg.value);
    }

    /// @notice Splits msg.value over several recipients (several internal transfers in one tx).
    function forwardMany(address payable[] calldata to, uint256[] calldata amounts) external payable {
        require(to.length == amounts.length, "length mismatch");
        uint256 total;
        for (uint256 i = 0; i < to.length; i++) {
            total += amounts[i];
            _send(to[i], amounts[i]);
        }
        require(total == msg.value, "value mismatch");
    }

    function _send(address payable to, uint256 amount) private {
        (bool ok,) = to.call{value: amount}("");
        if (!ok) revert ForwardFailed(to, amount);
        emit Forwarded(msg.sender, to, amount);
    }
}
